# setup.py of fetch 1.0.3.  The example tree's python runs setup
# scripts with sh; the commands are setup.py's: build, install --root=DIR.
name=fetch
site=$PYTHONHOME/lib/python$PYTHON_VERSION/site-packages
case $1 in
build)
	for m in $(cat requires.txt); do
		if [ ! -f "$site/$m/__init__.py" ]; then
			echo "setup.py: error: cannot import $m: $site/$m/__init__.py does not exist" >&2
			exit 1
		fi
	done
	rm -rf build
	mkdir -p build/lib/$name
	cp $name/*.py build/lib/$name/
	echo "__built_for__ = \"python$PYTHON_VERSION\"" >> build/lib/$name/__init__.py
	;;
install)
	root=${2#--root=}
	if [ ! -d build/lib/$name ]; then
		echo "setup.py: error: run 'setup.py build' first" >&2
		exit 1
	fi
	mkdir -p "$root$site"
	cp -R build/lib/$name "$root$site/"
	;;
*)
	echo "usage: setup.py build | install --root=DIR" >&2
	exit 2
	;;
esac
