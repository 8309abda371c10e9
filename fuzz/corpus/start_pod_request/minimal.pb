
6

minimaldefaultuid-minimalz
appbusybox:1.36