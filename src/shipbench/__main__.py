from shipbench.cli import main

main()
