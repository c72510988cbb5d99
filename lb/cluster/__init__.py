"""Farm membership view and liveness. Pure: time is passed in as `now`."""
