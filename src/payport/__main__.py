"""`python -m payport …` is the same as the `payport` command."""

from payport.cli import main

main()
