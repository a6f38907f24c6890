"""The command line: click groups that parse options, call the library and report."""
