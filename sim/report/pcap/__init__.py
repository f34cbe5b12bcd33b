"""``nflab pcap``: a user's own capture through the model's conntrack (issue 12).

- :mod:`~sim.report.pcap.reader`: pcap / pcapng frames, streamed, as :class:`sim.packet.Packet`;
- :mod:`~sim.report.pcap.analyse`: every packet through a ConntrackTable per kernel profile,
  connections, the host's own RSTs, untranslated packets;
- :mod:`~sim.report.pcap.findings`: what the flagged packets mean, and the what-if passes;
- :mod:`~sim.report.pcap.render`: words and JSON; :mod:`~sim.report.pcap.command`: the CLI;
- :mod:`~sim.report.pcap.tocase`: one connection as a replay case;
- :mod:`~sim.report.pcap.bench`: ``nflab bench``'s capture figures.
"""
