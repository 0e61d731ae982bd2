# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_blocker_global_optspecs
    string join \n config= pin-dir= state-dir= v/verbose h/help V/version
end

function __fish_blocker_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_blocker_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_blocker_using_subcommand
    set -l cmd (__fish_blocker_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c blocker -n "__fish_blocker_needs_command" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_needs_command" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_needs_command" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_needs_command" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_needs_command" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "run" -d 'Load blocker, attach XDP to the interfaces and run in the foreground until SIGINT or SIGTERM'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "detach" -d 'Remove blocker\'s XDP program from interfaces'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "ban" -d 'Drop all packets from addresses or CIDR prefixes'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "unban" -d 'Remove bans (exact addresses or prefixes, as they were banned)'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "allow" -d 'Always pass packets from addresses or CIDR prefixes, before any ban'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "disallow" -d 'Remove allowlist entries'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "list" -d 'Show the allow and block rules in the kernel, with time left, reason and the packets each one matched'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "stats" -d 'Show the XDP program\'s counters (summed over CPUs) and rule counts'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "zero-window" -d 'Show the sources that sent TCP SYNs with a zero window (the spoofed-flood and sockstress opening move), most first'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "policy" -d 'Switch global XDP policies: drop every zero-window SYN (from any non-allowlisted source) for a while, the answer to spoofed floods where per-source bans cannot help. The council can switch it on too'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "export" -d 'Print the live rules for another host: JSON (for `blocker import`), or a plain address list'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "import" -d 'Load rules from a file: blocker\'s JSON export, or a plain list of addresses/CIDRs (one per line, `#` or `;` comments) such as a published blocklist. Everything is validated first; nothing is written if a line is invalid, unless --skip-invalid'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "status" -d 'Show what is loaded: interfaces with blocker\'s XDP program, the daemon, and how full the tables are'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "top" -d 'A live view of what blocker is doing, refreshed every second: drops per source, active bans with their remaining TTL and origin, zero-window SYN talkers, recent verdicts and refusals, probe mode and journal state'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "debate" -d 'Run one council debate on a Suricata alert (or an incident file) and print the transcript and the verdicts'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "debates" -d 'Show the council\'s debates from the journal: the transcript (proposals, votes, rejected replies, outcome), the cost, and what the guard made of every verdict'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "config" -d 'Print the documented default configuration, or the one in effect'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "man" -d 'Print the man page (roff)'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "docs" -d 'Write the man pages, completions and configuration reference into a directory (what `cargo xtask docs` checks in under docs/)'
complete -c blocker -n "__fish_blocker_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand run" -s i -l iface -d 'Interface to protect (repeat for several)' -r
complete -c blocker -n "__fish_blocker_using_subcommand run" -l xdp-mode -d 'XDP attach mode: auto tries driver (native) mode and falls back to skb (generic) mode [default: from config, else auto]' -r -f -a "auto\t'Native (driver) mode, falling back to generic (skb) mode'
driver\t'Native mode only: fastest, needs driver support'
skb\t'Generic mode: works on every interface, after the kernel allocated the skb'"
complete -c blocker -n "__fish_blocker_using_subcommand run" -l treason-probe -d 'How the treason probes attach: auto tries kprobes and falls back to tracepoints [default: from config, else auto]' -r -f -a "auto\t'kprobes, falling back to tracepoints'
kprobe\t'kprobes on tcp_retransmit_timer and tcp_send_probe0 only'
tracepoint\t'The tcp:tcp_retransmit_skb and tcp:tcp_probe tracepoints only'
off\t'No probes (XDP, kmsg and IDS evidence only)'"
complete -c blocker -n "__fish_blocker_using_subcommand run" -l eve-json -d 'Follow this Suricata eve.json for IDS alerts' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand run" -l metrics-addr -d 'Serve Prometheus metrics (and /healthz, /readyz) on this address; a bare port means 127.0.0.1:PORT [default: from config, else off]' -r
complete -c blocker -n "__fish_blocker_using_subcommand run" -l agents -d 'What plays every role: rules (offline) or llm [default: from config, else rules]' -r -f -a "rules\t'The offline, deterministic rule agent of the role'
llm\t'A model behind an OpenAI-compatible endpoint (`[council.llm]`)'"
complete -c blocker -n "__fish_blocker_using_subcommand run" -l llm-base-url -d 'Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1 [default: from config, else $OPENAI_BASE_URL, else OpenAI\'s]. The key is read from $OPENAI_API_KEY' -r
complete -c blocker -n "__fish_blocker_using_subcommand run" -l model -d 'Model of the LLM agents [default: from config, else gpt-4o-mini]' -r
complete -c blocker -n "__fish_blocker_using_subcommand run" -l max-debate-rounds -d 'Rounds at most (2 to 10) [default: from config, else 4]' -r
complete -c blocker -n "__fish_blocker_using_subcommand run" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand run" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand run" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand run" -l no-kmsg -d 'Do not read /dev/kmsg'
complete -c blocker -n "__fish_blocker_using_subcommand run" -l dry-run -d 'Log what the council\'s verdicts would do; touch no map'
complete -c blocker -n "__fish_blocker_using_subcommand run" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand run" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand detach" -s i -l iface -d 'Interface to detach from (repeat for several)' -r
complete -c blocker -n "__fish_blocker_using_subcommand detach" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand detach" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand detach" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand detach" -l all -d 'Detach from every interface blocker is attached to'
complete -c blocker -n "__fish_blocker_using_subcommand detach" -l purge -d 'Also remove the pinned maps (all rules and counters in the kernel). The journal keeps the bans; the next `blocker run` restores them'
complete -c blocker -n "__fish_blocker_using_subcommand detach" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand detach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand detach" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l ttl -d 'How long the rule lasts: 90s, 30m, 1h, 7d, 1h30m, or never' -r
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l reason -d 'Why (kept in the journal and shown by `blocker list`)' -r
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l force -d 'Accept prefixes wider than /8 (IPv4) or /16 (IPv6)'
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l json -d 'Print the rules written as JSON'
complete -c blocker -n "__fish_blocker_using_subcommand ban" -l share -d 'Share the ban with the fleet (`[fleet]`): it is queued in the journal and the running daemon publishes it. Needs a --ttl. Also the default with `[fleet] share_operator_bans = true`. Example: blocker ban 203.0.113.7 --ttl 1h --share'
complete -c blocker -n "__fish_blocker_using_subcommand ban" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand ban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand ban" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand unban" -l origin -d 'Instead of addresses: every rule from this source or under it (`crowdsec:cscli`, `crowdsec:lists:NAME`, `council`, ...). A rule CrowdSec still decides comes back at the bouncer\'s next full pull; delete it there (`cscli decisions delete`) to lift it for good' -r
complete -c blocker -n "__fish_blocker_using_subcommand unban" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand unban" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand unban" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand unban" -l json -d 'Print what was removed as JSON'
complete -c blocker -n "__fish_blocker_using_subcommand unban" -l share -d 'Tell the fleet to lift it too. Implied when this node shared the ban (`blocker ban --share`); peers lift only bans they got from us. Example: blocker unban 203.0.113.7 --share'
complete -c blocker -n "__fish_blocker_using_subcommand unban" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand unban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand unban" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l ttl -d 'How long the rule lasts: 90s, 30m, 1h, 7d, 1h30m, or never' -r
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l reason -d 'Why (kept in the journal and shown by `blocker list`)' -r
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l force -d 'Accept prefixes wider than /8 (IPv4) or /16 (IPv6)'
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l json -d 'Print the rules written as JSON'
complete -c blocker -n "__fish_blocker_using_subcommand allow" -l share -d 'Share the ban with the fleet (`[fleet]`): it is queued in the journal and the running daemon publishes it. Needs a --ttl. Also the default with `[fleet] share_operator_bans = true`. Example: blocker ban 203.0.113.7 --ttl 1h --share'
complete -c blocker -n "__fish_blocker_using_subcommand allow" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand allow" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand allow" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -l origin -d 'Instead of addresses: every rule from this source or under it (`crowdsec:cscli`, `crowdsec:lists:NAME`, `council`, ...). A rule CrowdSec still decides comes back at the bouncer\'s next full pull; delete it there (`cscli decisions delete`) to lift it for good' -r
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -l json -d 'Print what was removed as JSON'
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -l share -d 'Tell the fleet to lift it too. Implied when this node shared the ban (`blocker ban --share`); peers lift only bans they got from us. Example: blocker unban 203.0.113.7 --share'
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand disallow" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand list" -l list -d 'Only this list' -r -f -a "allow\t'Checked first: matching sources always pass'
block\t'Matching sources are dropped'"
complete -c blocker -n "__fish_blocker_using_subcommand list" -l origin -d 'Only rules from this source or under it: `crowdsec` (every CrowdSec origin), `crowdsec:cscli`, `crowdsec:lists:NAME`, `council`, `cli`, ...' -r
complete -c blocker -n "__fish_blocker_using_subcommand list" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand list" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand list" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand list" -l json -d 'Machine-readable output (stable field names)'
complete -c blocker -n "__fish_blocker_using_subcommand list" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand list" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand stats" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand stats" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand stats" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand stats" -l json -d 'Machine-readable output (stable field names)'
complete -c blocker -n "__fish_blocker_using_subcommand stats" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand stats" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -l top -d 'Show at most this many sources' -r
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -l json -d 'Machine-readable output (stable field names)'
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand zero-window" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -f -a "zero-window-syn" -d 'Drop all TCP SYNs that advertise a zero window'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and not __fish_seen_subcommand_from zero-window-syn help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from zero-window-syn" -l ttl -d 'How long it stays on (it switches itself off in the kernel)' -r
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from zero-window-syn" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from zero-window-syn" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from zero-window-syn" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from zero-window-syn" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from zero-window-syn" -s h -l help -d 'Print help'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from zero-window-syn" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "zero-window-syn" -d 'Drop all TCP SYNs that advertise a zero window'
complete -c blocker -n "__fish_blocker_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand export" -l origin -d 'Only rules from this source or under it (`crowdsec`, `crowdsec:lists:NAME`, `council`, ...)' -r
complete -c blocker -n "__fish_blocker_using_subcommand export" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand export" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand export" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand export" -l json -d 'blocker\'s JSON format (keeps lists, expiries and reasons). Without it: one blocked address or CIDR per line'
complete -c blocker -n "__fish_blocker_using_subcommand export" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand export" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand import" -l list -d 'For plain lists: which list the addresses go to' -r -f -a "allow\t'Checked first: matching sources always pass'
block\t'Matching sources are dropped'"
complete -c blocker -n "__fish_blocker_using_subcommand import" -l ttl -d 'For plain lists: how long the rules last (90s, 1h, 7d, never)' -r
complete -c blocker -n "__fish_blocker_using_subcommand import" -l reason -d 'For plain lists: the reason recorded [default: "import: FILE"]' -r
complete -c blocker -n "__fish_blocker_using_subcommand import" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand import" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand import" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand import" -l skip-invalid -d 'Import the valid lines and report the invalid ones'
complete -c blocker -n "__fish_blocker_using_subcommand import" -l force -d 'Accept prefixes wider than /8 (IPv4) or /16 (IPv6)'
complete -c blocker -n "__fish_blocker_using_subcommand import" -l dry-run -d 'Validate and report; write nothing'
complete -c blocker -n "__fish_blocker_using_subcommand import" -l json -d 'Print the outcome as JSON'
complete -c blocker -n "__fish_blocker_using_subcommand import" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand import" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand status" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand status" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand status" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand status" -l json -d 'Machine-readable output (stable field names)'
complete -c blocker -n "__fish_blocker_using_subcommand status" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand status" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand top" -l rows -d 'Rows per section' -r
complete -c blocker -n "__fish_blocker_using_subcommand top" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand top" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand top" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand top" -l json -d 'Print one snapshot as JSON and exit'
complete -c blocker -n "__fish_blocker_using_subcommand top" -l once -d 'Print one plain-text snapshot and exit, even on a terminal'
complete -c blocker -n "__fish_blocker_using_subcommand top" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand top" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l alert -d 'The alert or incident file ("-" for standard input)' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l agents -d 'What plays every role: rules (offline) or llm [default: from config, else rules]' -r -f -a "rules\t'The offline, deterministic rule agent of the role'
llm\t'A model behind an OpenAI-compatible endpoint (`[council.llm]`)'"
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l llm-base-url -d 'Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1 [default: from config, else $OPENAI_BASE_URL, else OpenAI\'s]. The key is read from $OPENAI_API_KEY' -r
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l model -d 'Model of the LLM agents [default: from config, else gpt-4o-mini]' -r
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l max-debate-rounds -d 'Rounds at most (2 to 10) [default: from config, else 4]' -r
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l dry-run -d 'Check verdicts with the guard and log them; touch no map'
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l prompts -d 'Also print every system prompt, prompt and reply'
complete -c blocker -n "__fish_blocker_using_subcommand debate" -l json -d 'The report (incident, facts, transcript, outcomes) as JSON'
complete -c blocker -n "__fish_blocker_using_subcommand debate" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand debate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand debate" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -f -a "list" -d 'List debates, newest first: rounds, calls, tokens, wall time, result'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -f -a "show" -d 'Print one debate\'s transcript and verdicts'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and not __fish_seen_subcommand_from list show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -l limit -d 'Show at most this many' -r
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable output'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -l prompts -d 'Also print every system prompt, prompt and reply'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -l json -d 'The whole transcript as JSON'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from help" -f -a "list" -d 'List debates, newest first: rounds, calls, tokens, wall time, result'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print one debate\'s transcript and verdicts'
complete -c blocker -n "__fish_blocker_using_subcommand debates; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -f -a "default" -d 'The documented defaults (a good starting file)'
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -f -a "show" -d 'The configuration in effect: file, then flags'
complete -c blocker -n "__fish_blocker_using_subcommand config; and not __fish_seen_subcommand_from default show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from default" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from default" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from default" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from default" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from default" -s h -l help -d 'Print help'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from default" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from show" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from show" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from show" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "default" -d 'The documented defaults (a good starting file)'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'The configuration in effect: file, then flags'
complete -c blocker -n "__fish_blocker_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand completions" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand completions" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand completions" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand completions" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand completions" -s h -l help -d 'Print help'
complete -c blocker -n "__fish_blocker_using_subcommand completions" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand man" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand man" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand man" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand man" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand man" -s h -l help -d 'Print help'
complete -c blocker -n "__fish_blocker_using_subcommand man" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand docs" -l config -d 'Configuration file (TOML). Without it, /etc/blocker/blocker.toml is read if it exists' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand docs" -l pin-dir -d 'bpffs directory of blocker\'s pinned maps and links [default: /sys/fs/bpf/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand docs" -l state-dir -d 'Directory of the SQLite journal and daemon status [default: /var/lib/blocker]' -r -F
complete -c blocker -n "__fish_blocker_using_subcommand docs" -s v -l verbose -d 'More logging: -v debug, -vv trace (RUST_LOG overrides)'
complete -c blocker -n "__fish_blocker_using_subcommand docs" -s h -l help -d 'Print help'
complete -c blocker -n "__fish_blocker_using_subcommand docs" -s V -l version -d 'Print version'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "run" -d 'Load blocker, attach XDP to the interfaces and run in the foreground until SIGINT or SIGTERM'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "detach" -d 'Remove blocker\'s XDP program from interfaces'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "ban" -d 'Drop all packets from addresses or CIDR prefixes'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "unban" -d 'Remove bans (exact addresses or prefixes, as they were banned)'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "allow" -d 'Always pass packets from addresses or CIDR prefixes, before any ban'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "disallow" -d 'Remove allowlist entries'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "list" -d 'Show the allow and block rules in the kernel, with time left, reason and the packets each one matched'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "stats" -d 'Show the XDP program\'s counters (summed over CPUs) and rule counts'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "zero-window" -d 'Show the sources that sent TCP SYNs with a zero window (the spoofed-flood and sockstress opening move), most first'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "policy" -d 'Switch global XDP policies: drop every zero-window SYN (from any non-allowlisted source) for a while, the answer to spoofed floods where per-source bans cannot help. The council can switch it on too'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "export" -d 'Print the live rules for another host: JSON (for `blocker import`), or a plain address list'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "import" -d 'Load rules from a file: blocker\'s JSON export, or a plain list of addresses/CIDRs (one per line, `#` or `;` comments) such as a published blocklist. Everything is validated first; nothing is written if a line is invalid, unless --skip-invalid'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "status" -d 'Show what is loaded: interfaces with blocker\'s XDP program, the daemon, and how full the tables are'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "top" -d 'A live view of what blocker is doing, refreshed every second: drops per source, active bans with their remaining TTL and origin, zero-window SYN talkers, recent verdicts and refusals, probe mode and journal state'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "debate" -d 'Run one council debate on a Suricata alert (or an incident file) and print the transcript and the verdicts'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "debates" -d 'Show the council\'s debates from the journal: the transcript (proposals, votes, rejected replies, outcome), the cost, and what the guard made of every verdict'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "config" -d 'Print the documented default configuration, or the one in effect'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "completions" -d 'Print shell completions'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "man" -d 'Print the man page (roff)'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "docs" -d 'Write the man pages, completions and configuration reference into a directory (what `cargo xtask docs` checks in under docs/)'
complete -c blocker -n "__fish_blocker_using_subcommand help; and not __fish_seen_subcommand_from run detach ban unban allow disallow list stats zero-window policy export import status top debate debates config completions man docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c blocker -n "__fish_blocker_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "zero-window-syn" -d 'Drop all TCP SYNs that advertise a zero window'
complete -c blocker -n "__fish_blocker_using_subcommand help; and __fish_seen_subcommand_from debates" -f -a "list" -d 'List debates, newest first: rounds, calls, tokens, wall time, result'
complete -c blocker -n "__fish_blocker_using_subcommand help; and __fish_seen_subcommand_from debates" -f -a "show" -d 'Print one debate\'s transcript and verdicts'
complete -c blocker -n "__fish_blocker_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "default" -d 'The documented defaults (a good starting file)'
complete -c blocker -n "__fish_blocker_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'The configuration in effect: file, then flags'
