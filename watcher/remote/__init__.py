"""Scale-out on RabbitMQ: the broker topology, the watcher's client and the queue worker."""
