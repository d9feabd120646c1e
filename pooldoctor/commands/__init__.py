"""One module per CLI command; each is thin: parse options, call the library, print."""
