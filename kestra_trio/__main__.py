from kestra_trio.cli import main

main()
