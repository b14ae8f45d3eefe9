"""Pipeline definition (one factory from one config), the local runner, the demo data and run outputs."""
