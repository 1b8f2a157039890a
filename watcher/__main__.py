from unet_matting.watcher.cli import main

raise SystemExit(main())
