from seqalignatac.cli.main import main

main()
