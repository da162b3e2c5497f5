from services.web.main import main

main()
