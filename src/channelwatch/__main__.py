from channelwatch.cli import main

main()
