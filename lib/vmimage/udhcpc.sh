#!/usr/bin/busybox sh
# The worker image's udhcpc script (lib/vmimage, /etc/pkgbulk/udhcpc.sh):
# configure the interface from the DHCP lease busybox udhcpc got. Called
# with the event in $1 and the lease in the environment (interface, ip,
# mask as a prefix length, router, dns, mtu).
bb=/usr/bin/busybox
case $1 in
deconfig)
	$bb ip -4 addr flush dev "$interface"
	;;
bound | renew)
	[ -z "$mtu" ] || $bb ip link set dev "$interface" mtu "$mtu"
	$bb ip -4 addr flush dev "$interface"
	$bb ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do
		$bb ip route replace default via "$r" dev "$interface"
		break
	done
	: > /etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
	;;
esac
exit 0
