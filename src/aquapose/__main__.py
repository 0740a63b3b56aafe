from aquapose.cli import main

main()
