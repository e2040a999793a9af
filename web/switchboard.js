// Switchboard browser client
