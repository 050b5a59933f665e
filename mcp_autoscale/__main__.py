from mcp_autoscale.cli import main

main()
