
1

hostdefaultuid-host(08z
appappb