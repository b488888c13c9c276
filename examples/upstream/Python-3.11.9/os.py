# The standard library of the example python 3.11.9.
name = "posix"
