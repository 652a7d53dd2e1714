from torch2jax.cli import main

main()
