from loader.cli.app import main

main()
