"""Bach chorale data (report §3.2): sources, soprano extraction, transposition to C, tokens and splits."""
