from qwen_image2.cli import main

main()
