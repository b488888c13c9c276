# ex.lib.mk: build one static C library.  Installed by bootstrap-mk-files
# into ${PREFIX}/share/mk.
#   LIB   library name (libLIB.a)   SRCS  C sources   INCS  public headers
PREFIX?=	/usr/local
CC?=		cc
AR?=		ar
OBJS=		${SRCS:.c=.o}
CFLAGS+=	-O -I. -I${PREFIX}/include

all: lib${LIB}.a
lib${LIB}.a: ${OBJS}
	${AR} rcs ${.TARGET} ${OBJS}
.for _s in ${SRCS}
${_s:.c=.o}: ${_s} ${INCS}
	${CC} ${CFLAGS} -c ${_s} -o ${.TARGET}
.endfor
install: all
	mkdir -p ${DESTDIR}${PREFIX}/lib ${DESTDIR}${PREFIX}/include
	cp lib${LIB}.a ${DESTDIR}${PREFIX}/lib/
	cp ${INCS} ${DESTDIR}${PREFIX}/include/
clean:
	rm -f lib${LIB}.a ${OBJS}
