"""The network stack the packets cross: namespaces with devices and routes (``netns``), the IPv4
paths with their netfilter hook call sites (``ipv4``), socket lookup and ``tcp_v4_send_reset``
(``tcp_ipv4``), TCP endpoints (``endpoint``) and the world that joins namespaces by links on one
clock (``world``)."""
