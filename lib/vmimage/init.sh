#!/usr/bin/busybox sh
# /init of the pkgbulk worker image (made by lib/vmimage). It boots
# straight into `pkgrun worker` and powers the machine off when the worker
# exits. Nothing secret is in the image. Under qemu (lib/provider/qemu)
# the kernel command line carries the server's URL, its certificate pin,
# the worker's name and labels (pkgbulk.server= pkgbulk.pin= pkgbulk.name=
# pkgbulk.label=k=v pkgbulk.imds=) and the one-session token comes through
# fw_cfg (opt/pkgbulk/token); or fw_cfg's opt/pkgbulk/user-data holds the
# same settings as lines of key=value (server, pin, name, label, imds,
# token). The address is then the static 10.0.2.15 of qemu's user network.
# On EC2 (neither gives a setting) the network comes up by DHCP on the
# first interface (ENA there, virtio under qemu) and the same key=value
# lines are the instance's user data, read from the instance metadata
# service (IMDSv2, `pkgrun user-data`), which the worker then also
# watches for a spot interruption notice unless the user data says
# imds= (empty: none).
bb=/usr/bin/busybox
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

if [ "$1" != stage2 ]; then
	# pivot_root(2) refuses the initial rootfs, and every build sandbox
	# pivots: make / a bind mount of itself, then start over inside it.
	$bb mkdir -p /.root
	$bb mount --bind / /.root
	cd /.root
	$bb mount --move . /
	exec $bb chroot . /init stage2
fi

$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
$bb mkdir -p /dev/pts /dev/shm
$bb mount -t devpts devpts /dev/pts
$bb mount -t tmpfs -o mode=1777 tmpfs /tmp
$bb mount -t tmpfs -o mode=0755 tmpfs /run
$bb mkdir -p /var/pkgbulk /var/tmp
$bb mount -t tmpfs -o mode=0755 tmpfs /var/pkgbulk
$bb mount -t tmpfs -o mode=1777 tmpfs /var/tmp
$bb hostname pkgbulk-worker

say() {
	read -r up _ < /proc/uptime
	echo "pkgbulk-init: [$up] $*" > /dev/console
}
say "up"
off() {
	say "$*"
	$bb sync
	$bb poweroff -f
}

while read -r m; do
	$bb insmod "$m" || say "insmod $m failed"
done < /etc/pkgbulk/modules

$bb ip link set lo up

server= pin= name= imds= imdsset= labels=
umask 077
$bb mkdir -p /run/pkgbulk
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/pkgbulk
setting() { # key value
	case $1 in
	server) server=$2 ;;
	pin) pin=$2 ;;
	name) name=$2 ;;
	imds) imds=$2 imdsset=yes ;;
	label) labels="$labels $2" ;;
	token) printf '%s\n' "$2" > /run/pkgbulk/token ;;
	esac
}
for w in $($bb cat /proc/cmdline); do
	case $w in
	pkgbulk.*=*) k=${w%%=*}; setting "${k#pkgbulk.}" "${w#*=}" ;;
	esac
done
if [ -r $fw/user-data/raw ]; then
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in
		*=*) setting "${line%%=*}" "${line#*=}" ;;
		esac
	done < $fw/user-data/raw
fi
[ -r $fw/token/raw ] && $bb cat $fw/token/raw > /run/pkgbulk/token
# Builds run as root in their sandboxes, with /sys read-only: take fw_cfg
# away, so that none can read the token (or the user data) there.
$bb rmmod qemu_fw_cfg 2>/dev/null || say "could not unload qemu_fw_cfg"
umask 022

if [ -n "$server" ] || [ -s /run/pkgbulk/token ]; then
	# qemu: the only network is the user-mode one the host gives (with
	# restrict=on, only the forwards to the master get out).
	$bb ip link set eth0 up || off "no network interface"
	$bb ip addr add 10.0.2.15/24 dev eth0
	$bb ip route add default via 10.0.2.2
else
	# EC2: DHCP on the first interface there is (the driver may still be
	# probing), then the user data from the metadata service.
	md=http://169.254.169.254
	i=0 iface=
	while [ -z "$iface" ]; do
		for n in /sys/class/net/*; do
			case ${n##*/} in lo) ;; *) iface=${n##*/}; break ;; esac
		done
		i=$((i + 1))
		[ -n "$iface" ] || [ $i -lt 100 ] || off "no network interface"
		[ -n "$iface" ] || $bb sleep 0.1
	done
	$bb ip link set "$iface" up
	# One lease and done (-q): the address stays when the lease ends,
	# and an EC2 instance keeps its private address for its life.
	$bb udhcpc -i "$iface" -q -n -t 30 -T 1 -s /etc/pkgbulk/udhcpc.sh > /dev/console 2>&1 ||
		off "no DHCP lease on $iface"
	say "$iface: $($bb ip -4 -o addr show dev "$iface" | $bb awk '{print $4}'); user data from $md"
	umask 077
	/usr/bin/pkgrun user-data --imds "$md" --wait 120s > /run/pkgbulk/user-data ||
		off "no user data from the instance metadata service $md"
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in
		*=*) setting "${line%%=*}" "${line#*=}" ;;
		esac
	done < /run/pkgbulk/user-data
	$bb rm -f /run/pkgbulk/user-data
	umask 022
	[ -n "$imdsset" ] || imds=$md
	if [ -z "$imds" ]; then
		# Not watched for spot notices: take the metadata service
		# (the user data and what else it tells) away from the builds
		# that keep the network. They lack CAP_NET_ADMIN (lib/sandbox)
		# and cannot remove the route.
		$bb ip route add blackhole 169.254.169.254/32 || say "could not hide the metadata service"
	fi
fi
[ -s /run/pkgbulk/token ] || off "no token (fw_cfg opt/pkgbulk/token or the user data)"
[ -n "$server" ] || off "no server (pkgbulk.server= on the kernel command line)"
[ -n "$name" ] || name=$($bb hostname)

set -- worker --server "$server" --token-file /run/pkgbulk/token --name "$name" \
	--pkgsrc /usr/pkgsrc --work-root /var/pkgbulk
for k in /usr/pkgbulk/kit/*; do
	[ -f "$k" ] && set -- "$@" --bootstrap-kit "$k"
done
[ -z "$pin" ] || set -- "$@" --fingerprint "$pin"
[ -z "$imds" ] || set -- "$@" --spot-imds "$imds"
for l in $labels; do set -- "$@" --label "$l"; done
say "starting pkgrun worker --name $name --server $server${imds:+ --spot-imds $imds}"
# Each line of the worker's log on the console, after the uptime.
stamp() {
	while IFS= read -r l; do
		read -r up _ < /proc/uptime
		echo "[$up] $l"
	done
}
set -o pipefail
/usr/bin/pkgrun "$@" 2>&1 < /dev/null | stamp > /dev/console
off "pkgrun worker exited with status $?"
