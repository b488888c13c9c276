# ex.prog.mk: build one C program.  Installed by bootstrap-mk-files into
# ${PREFIX}/share/mk; the example tree's C packages include it from there.
#   PROG  program name        SRCS  C sources
#   LDADD libraries (-lfoo)   looks for headers and libraries in ${PREFIX}
#   INSTALL_MORE  extra targets the Makefile defines, run by `install`
PREFIX?=	/usr/local
CC?=		cc
OBJS=		${SRCS:.c=.o}
CFLAGS+=	-O -I. -I${PREFIX}/include
LDFLAGS+=	-L${PREFIX}/lib

all: ${PROG}
${PROG}: ${OBJS}
	${CC} ${LDFLAGS} -o ${.TARGET} ${OBJS} ${LDADD}
.for _s in ${SRCS}
${_s:.c=.o}: ${_s}
	${CC} ${CFLAGS} -c ${_s} -o ${.TARGET}
.endfor
install: all _install_prog ${INSTALL_MORE}
_install_prog:
	mkdir -p ${DESTDIR}${PREFIX}/bin
	cp ${PROG} ${DESTDIR}${PREFIX}/bin/${PROG}
	chmod 755 ${DESTDIR}${PREFIX}/bin/${PROG}
.if defined(DATAFILES)
	mkdir -p ${DESTDIR}${PREFIX}/share/${PROG}
	cp ${DATAFILES} ${DESTDIR}${PREFIX}/share/${PROG}/
.endif
clean:
	rm -f ${PROG} ${OBJS}
