package api

import "strings"

// DisksPrefix is where Options.Disks serves disks to peer nodes: the
// handler authenticates a peer by its certificate, so these paths need no
// API credential, and a chunk streams outside the in-flight bound the
// short requests share.
const DisksPrefix = Prefix + "/disks"

func isDiskPath(path string) bool { return strings.HasPrefix(path, DisksPrefix+"/") }
