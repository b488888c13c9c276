# A stand-in for pkgsrc's mk/bsd.prefs.mk: platform variables.
.if !defined(_BSD_PREFS_MK)
_BSD_PREFS_MK=	yes
OPSYS!=		uname -s 2>/dev/null || echo Unknown
MACHINE_ARCH?=	x86_64
LOCALBASE?=	/usr/pkg
.  for v in OPSYS MACHINE_ARCH LOCALBASE
_PREFS_VARS+=	${v}=${${v}}
.  endfor
.endif
