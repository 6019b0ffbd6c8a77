"""Model servers on this machine (docs/serving.md): which listening process has a protected model loaded,
where it listens and how far that reaches, what protocol it speaks and whether it answers without
authentication (a probe made only to loopback), and how much each remote peer asks of it."""
