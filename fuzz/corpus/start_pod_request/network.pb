
´

networkdefaultuid-network	host-namesub"/
	10.0.0.10default.svc.cluster.localndots:5BruncJkubepods.sliceR(
#net.ipv4.ip_unprivileged_port_start0z
appappR5(