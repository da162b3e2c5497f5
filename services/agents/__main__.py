from services.agents.main import main

main()
