from unet_matting.watcher.cli import main

if __name__ == "__main__":  # a render process (engine.processes) imports this module again: no second daemon
    raise SystemExit(main())
