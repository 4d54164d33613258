"""Sign-in against LDAP directories: the directory client (``directory``), outside ``protocol/`` because it
does network I/O; the sign-in flow asks it through its ``authenticate``."""
