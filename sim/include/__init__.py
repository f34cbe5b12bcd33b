"""The data the kernel keeps in its headers (include/net/netfilter/, include/uapi/linux/netfilter/).

Structs and enums only, no algorithm: ``nf_conntrack`` (``struct nf_conn``, its status bits and
tuples), ``nf_conntrack_tcp`` (``struct ip_ct_tcp``, ``struct ip_ct_tcp_state``,
``enum tcp_conntrack``). They sit in the base layer beside :mod:`sim.skb` and :mod:`sim.trace`,
so the algorithm files (``sim.netfilter.conntrack``, ``sim.netfilter.proto_tcp``) and the trace
import the types rather than each other.
"""
