"""``nflab pcap``: a user's own capture through the model's conntrack (issue 12).

- :mod:`~sim.pcap.reader`: pcap / pcapng frames, streamed; :mod:`~sim.pcap.link`: what a
  frame of each link type carries, the IPv4 TCP segment's header fields (a Packet on demand);
- :mod:`~sim.pcap.analyse`: every packet through a ConntrackTable per kernel profile,
  connections, the host's own RSTs, untranslated packets;
- :mod:`~sim.pcap.findings`: what the flagged packets mean, and the what-if passes;
- :mod:`~sim.pcap.render`: words and JSON; :mod:`~sim.pcap.command`: the CLI;
- :mod:`~sim.pcap.tocase`: one connection as a replay case;
- :mod:`~sim.pcap.bench`: ``nflab bench``'s capture figures.
"""
