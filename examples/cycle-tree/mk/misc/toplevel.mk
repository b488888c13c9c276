# The cycle tree shares the main tree's infrastructure.
.include "../../../tree/mk/misc/toplevel.mk"
