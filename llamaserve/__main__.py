from llamaserve.cli import main

main()
