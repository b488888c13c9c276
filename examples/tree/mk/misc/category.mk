# category.mk: included by each category Makefile (`SUBDIR+= pkgdir` lines,
# then `.include "../mk/misc/category.mk"`).
#
#   show-subdir-var VARNAME=SUBDIR   print the package directories, as pbulk's
#                                    scanner enumerates the tree
#   show-var VARNAME=X               print any variable

.MAIN: show-subdir-var
VARNAME?=	SUBDIR
SUBDIR?=	# none

.PHONY: show-subdir-var show-var
show-subdir-var show-var:
	@echo ${${VARNAME}:Q}
