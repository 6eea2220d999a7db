from feedlab.cli import main

main()
