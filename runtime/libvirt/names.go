package virt

import (
	"libvirt.org/go/libvirt"

	"github.com/nodevirt/nodevirt/runtime/hv"
)

// The tables below spell libvirt's enum names the way hv documents them: the
// suffix of the C constant in lower case, with '_' turned into '-' (so
// VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT is "from-snapshot"). They are keyed by the
// binding's constants rather than by position so that a renumbering in a newer
// libvirt cannot silently shift every name. Values missing from a table (added
// by a newer libvirt) are reported as "unknown".

var stateNames = map[libvirt.DomainState]hv.State{
	libvirt.DOMAIN_NOSTATE:     hv.NoState,
	libvirt.DOMAIN_RUNNING:     hv.Running,
	libvirt.DOMAIN_BLOCKED:     hv.Blocked,
	libvirt.DOMAIN_PAUSED:      hv.Paused,
	libvirt.DOMAIN_SHUTDOWN:    hv.ShuttingOff,
	libvirt.DOMAIN_SHUTOFF:     hv.Shutoff,
	libvirt.DOMAIN_CRASHED:     hv.Crashed,
	libvirt.DOMAIN_PMSUSPENDED: hv.PMSuspended,
}

var reasonNames = map[libvirt.DomainState]map[int]string{
	libvirt.DOMAIN_NOSTATE: {
		int(libvirt.DOMAIN_NOSTATE_UNKNOWN): "unknown",
	},
	libvirt.DOMAIN_RUNNING: {
		int(libvirt.DOMAIN_RUNNING_UNKNOWN):            "unknown",
		int(libvirt.DOMAIN_RUNNING_BOOTED):             "booted",
		int(libvirt.DOMAIN_RUNNING_MIGRATED):           "migrated",
		int(libvirt.DOMAIN_RUNNING_RESTORED):           "restored",
		int(libvirt.DOMAIN_RUNNING_FROM_SNAPSHOT):      "from-snapshot",
		int(libvirt.DOMAIN_RUNNING_UNPAUSED):           "unpaused",
		int(libvirt.DOMAIN_RUNNING_MIGRATION_CANCELED): "migration-canceled",
		int(libvirt.DOMAIN_RUNNING_SAVE_CANCELED):      "save-canceled",
		int(libvirt.DOMAIN_RUNNING_WAKEUP):             "wakeup",
		int(libvirt.DOMAIN_RUNNING_CRASHED):            "crashed",
		int(libvirt.DOMAIN_RUNNING_POSTCOPY):           "postcopy",
		int(libvirt.DOMAIN_RUNNING_POSTCOPY_FAILED):    "postcopy-failed",
	},
	libvirt.DOMAIN_BLOCKED: {
		int(libvirt.DOMAIN_BLOCKED_UNKNOWN): "unknown",
	},
	libvirt.DOMAIN_PAUSED: {
		int(libvirt.DOMAIN_PAUSED_UNKNOWN):         "unknown",
		int(libvirt.DOMAIN_PAUSED_USER):            "user",
		int(libvirt.DOMAIN_PAUSED_MIGRATION):       "migration",
		int(libvirt.DOMAIN_PAUSED_SAVE):            "save",
		int(libvirt.DOMAIN_PAUSED_DUMP):            "dump",
		int(libvirt.DOMAIN_PAUSED_IOERROR):         "ioerror",
		int(libvirt.DOMAIN_PAUSED_WATCHDOG):        "watchdog",
		int(libvirt.DOMAIN_PAUSED_FROM_SNAPSHOT):   "from-snapshot",
		int(libvirt.DOMAIN_PAUSED_SHUTTING_DOWN):   "shutting-down",
		int(libvirt.DOMAIN_PAUSED_SNAPSHOT):        "snapshot",
		int(libvirt.DOMAIN_PAUSED_CRASHED):         "crashed",
		int(libvirt.DOMAIN_PAUSED_STARTING_UP):     "starting-up",
		int(libvirt.DOMAIN_PAUSED_POSTCOPY):        "postcopy",
		int(libvirt.DOMAIN_PAUSED_POSTCOPY_FAILED): "postcopy-failed",
		int(libvirt.DOMAIN_PAUSED_API_ERROR):       "api-error",
	},
	libvirt.DOMAIN_SHUTDOWN: {
		int(libvirt.DOMAIN_SHUTDOWN_UNKNOWN): "unknown",
		int(libvirt.DOMAIN_SHUTDOWN_USER):    "user",
	},
	libvirt.DOMAIN_SHUTOFF: {
		int(libvirt.DOMAIN_SHUTOFF_UNKNOWN):       "unknown",
		int(libvirt.DOMAIN_SHUTOFF_SHUTDOWN):      "shutdown",
		int(libvirt.DOMAIN_SHUTOFF_DESTROYED):     "destroyed",
		int(libvirt.DOMAIN_SHUTOFF_CRASHED):       "crashed",
		int(libvirt.DOMAIN_SHUTOFF_MIGRATED):      "migrated",
		int(libvirt.DOMAIN_SHUTOFF_SAVED):         "saved",
		int(libvirt.DOMAIN_SHUTOFF_FAILED):        "failed",
		int(libvirt.DOMAIN_SHUTOFF_FROM_SNAPSHOT): "from-snapshot",
		int(libvirt.DOMAIN_SHUTOFF_DAEMON):        "daemon",
	},
	libvirt.DOMAIN_CRASHED: {
		int(libvirt.DOMAIN_CRASHED_UNKNOWN):  "unknown",
		int(libvirt.DOMAIN_CRASHED_PANICKED): "panicked",
	},
	libvirt.DOMAIN_PMSUSPENDED: {
		int(libvirt.DOMAIN_PMSUSPENDED_UNKNOWN): "unknown",
	},
}

// stateName translates libvirt's (state, reason) pair.
func stateName(s libvirt.DomainState, reason int) (hv.State, string) {
	st, ok := stateNames[s]
	if !ok {
		st = hv.NoState
	}
	r, ok := reasonNames[s][reason]
	if !ok {
		r = "unknown"
	}
	return st, r
}

var eventKinds = map[libvirt.DomainEventType]hv.EventKind{
	libvirt.DOMAIN_EVENT_DEFINED:     hv.EventDefined,
	libvirt.DOMAIN_EVENT_UNDEFINED:   hv.EventUndefined,
	libvirt.DOMAIN_EVENT_STARTED:     hv.EventStarted,
	libvirt.DOMAIN_EVENT_SUSPENDED:   hv.EventSuspended,
	libvirt.DOMAIN_EVENT_RESUMED:     hv.EventResumed,
	libvirt.DOMAIN_EVENT_STOPPED:     hv.EventStopped,
	libvirt.DOMAIN_EVENT_SHUTDOWN:    hv.EventShutdown,
	libvirt.DOMAIN_EVENT_PMSUSPENDED: hv.EventSuspended,
	libvirt.DOMAIN_EVENT_CRASHED:     hv.EventCrashed,
}

var eventDetails = map[libvirt.DomainEventType]map[int]string{
	libvirt.DOMAIN_EVENT_DEFINED: {
		int(libvirt.DOMAIN_EVENT_DEFINED_ADDED):         "added",
		int(libvirt.DOMAIN_EVENT_DEFINED_UPDATED):       "updated",
		int(libvirt.DOMAIN_EVENT_DEFINED_RENAMED):       "renamed",
		int(libvirt.DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT): "from-snapshot",
	},
	libvirt.DOMAIN_EVENT_UNDEFINED: {
		int(libvirt.DOMAIN_EVENT_UNDEFINED_REMOVED): "removed",
		int(libvirt.DOMAIN_EVENT_UNDEFINED_RENAMED): "renamed",
	},
	libvirt.DOMAIN_EVENT_STARTED: {
		int(libvirt.DOMAIN_EVENT_STARTED_BOOTED):        "booted",
		int(libvirt.DOMAIN_EVENT_STARTED_MIGRATED):      "migrated",
		int(libvirt.DOMAIN_EVENT_STARTED_RESTORED):      "restored",
		int(libvirt.DOMAIN_EVENT_STARTED_FROM_SNAPSHOT): "from-snapshot",
		int(libvirt.DOMAIN_EVENT_STARTED_WAKEUP):        "wakeup",
		int(libvirt.DOMAIN_EVENT_STARTED_RECREATED):     "recreated",
	},
	libvirt.DOMAIN_EVENT_SUSPENDED: {
		int(libvirt.DOMAIN_EVENT_SUSPENDED_PAUSED):          "paused",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_MIGRATED):        "migrated",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_IOERROR):         "ioerror",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_WATCHDOG):        "watchdog",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_RESTORED):        "restored",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT):   "from-snapshot",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_API_ERROR):       "api-error",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_POSTCOPY):        "postcopy",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED): "postcopy-failed",
		int(libvirt.DOMAIN_EVENT_SUSPENDED_GUEST_SHUTDOWN):  "guest-shutdown",
	},
	libvirt.DOMAIN_EVENT_RESUMED: {
		int(libvirt.DOMAIN_EVENT_RESUMED_UNPAUSED):        "unpaused",
		int(libvirt.DOMAIN_EVENT_RESUMED_MIGRATED):        "migrated",
		int(libvirt.DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT):   "from-snapshot",
		int(libvirt.DOMAIN_EVENT_RESUMED_POSTCOPY):        "postcopy",
		int(libvirt.DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED): "postcopy-failed",
	},
	libvirt.DOMAIN_EVENT_STOPPED: {
		int(libvirt.DOMAIN_EVENT_STOPPED_SHUTDOWN):      "shutdown",
		int(libvirt.DOMAIN_EVENT_STOPPED_DESTROYED):     "destroyed",
		int(libvirt.DOMAIN_EVENT_STOPPED_CRASHED):       "crashed",
		int(libvirt.DOMAIN_EVENT_STOPPED_MIGRATED):      "migrated",
		int(libvirt.DOMAIN_EVENT_STOPPED_SAVED):         "saved",
		int(libvirt.DOMAIN_EVENT_STOPPED_FAILED):        "failed",
		int(libvirt.DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT): "from-snapshot",
		int(libvirt.DOMAIN_EVENT_STOPPED_RECREATED):     "recreated",
	},
	libvirt.DOMAIN_EVENT_SHUTDOWN: {
		int(libvirt.DOMAIN_EVENT_SHUTDOWN_FINISHED): "finished",
		int(libvirt.DOMAIN_EVENT_SHUTDOWN_GUEST):    "guest",
		int(libvirt.DOMAIN_EVENT_SHUTDOWN_HOST):     "host",
	},
	// hv has no separate kind for guest power-management suspend; it is
	// reported as EventSuspended with a "pmsuspended-" detail so that it stays
	// distinguishable from a pause.
	libvirt.DOMAIN_EVENT_PMSUSPENDED: {
		int(libvirt.DOMAIN_EVENT_PMSUSPENDED_MEMORY): "pmsuspended-memory",
		int(libvirt.DOMAIN_EVENT_PMSUSPENDED_DISK):   "pmsuspended-disk",
	},
	libvirt.DOMAIN_EVENT_CRASHED: {
		int(libvirt.DOMAIN_EVENT_CRASHED_PANICKED):    "panicked",
		int(libvirt.DOMAIN_EVENT_CRASHED_CRASHLOADED): "crashloaded",
	},
}

// eventOf translates a lifecycle callback's payload.
func eventOf(domain string, e *libvirt.DomainEventLifecycle) hv.Event {
	kind, ok := eventKinds[e.Event]
	if !ok {
		kind = hv.EventOther
	}
	detail, ok := eventDetails[e.Event][e.Detail]
	if !ok {
		detail = "unknown"
	}
	return hv.Event{Domain: domain, Kind: kind, Detail: detail}
}
