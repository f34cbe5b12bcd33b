"""Presentation, read off the trace: the trace's sentences (``sentences``), the window check in
plain words (``words``), the timeline (``timeline``), tcpdump text and pcap files
(``capture``), the walkthrough's steps (``walkthrough``), exercises with a checker
(``exercises``), the SVG figures (``figures/``) and the kernel profiles' table (``kernels``). The
analysis of real captures is ``sim.pcap``."""
