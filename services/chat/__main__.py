from services.chat.main import main

main()
