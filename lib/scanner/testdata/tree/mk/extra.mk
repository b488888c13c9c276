# Included by a few packages only: changing it must rescan exactly those.
EXTRA_FLAVOUR?=	plain
.if ${EXTRA_FLAVOUR} == "plain"
TOOL_DEPENDS+=	cwrappers>=20150314:../../devel/beta
.endif
