"""The Segmind API as the client sees it: HTTP in one place (``client``, ``download``),
its formats parsed once (``results``, ``history``), the account history's answers
(``reconcile``), and the rules for calling it (``retry``, ``ratelimit``)."""
