# The standard library of the example python 3.12.4.
name = "posix"
