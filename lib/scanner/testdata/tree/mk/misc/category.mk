# The part of pkgsrc's mk/misc/category.mk that a scan uses.
.include "${.PARSEDIR}/../bsd.prefs.mk"

show-subdir-var:
	@echo ${${VARNAME}:Q}
