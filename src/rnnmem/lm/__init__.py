"""Language models of the chorale sopranos (report §3)."""
