"""Presentation, read off the trace: the timeline (``timeline``), tcpdump text and pcap files
(``capture``), the walkthrough's steps (``walkthrough``), exercises with a checker
(``exercises``) and the SVG figures (``figures``)."""
