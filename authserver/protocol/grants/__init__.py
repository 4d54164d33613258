"""One grant, one module: each takes the parsed request and the authenticated client and returns
the token response."""
