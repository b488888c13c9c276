# toplevel.mk: included by the tree's top Makefile, which lists the
# categories with `SUBDIR+= category`.  Same targets as category.mk.
.include "category.mk"
