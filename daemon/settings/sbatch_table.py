"""sbatch 22.05's options as its own parser reads them: each long option by whether it takes a
value (required, optional or none), and the short letters that require one; for
:mod:`daemon.settings.sbatch_options`, which refuses an option given without the value it
requires (sbatch would take the next word of its command line as that value).

Read from sbatch 22.05.8 itself (no controller needed: ``SLURM_CONF`` naming a throwaway
``slurm.conf``, cwd under /tmp, the script on standard input from /dev/null):

- the long names: the possibilities ``sbatch --a`` ... ``sbatch --z`` lists ("option '--a'
  is ambiguous; possibilities: '--account' '--acctg-freq' '--array'"; ``--j``, ``--k``,
  ``--l`` are each one option, named by the next step), which hold every ``--x`` name of
  ``sbatch --help``; no other string of ``libslurmfull.so`` or ``sbatch`` is a long option
  sbatch takes (each tried as ``sbatch --<string>``: unrecognized, ambiguous or a prefix of
  a listed one);
- each name: ``sbatch --<name>`` says "option '--<name>' requires an argument" (required),
  else ``sbatch --<name>=x`` says "option '--<name>' doesn't allow an argument" (none), else
  it is optional (``--exclusive[=user]``);
- each letter a-z, A-Z, 0-9: ``sbatch -<letter>`` says "option requires an argument -- 't'"
  (required), else ``sbatch -<letter>A`` says it is an invalid option (``-I``, ``-u``), reads
  ``A`` as the letter's value (``-kA``: "Invalid --no-kill specification") or as the next
  option (a flag). The 28 letters and digits not in :data:`FLAGS_SHORT`,
  :data:`VALUE_REQUIRED_SHORT` or :data:`VALUE_OPTIONAL_SHORT` (``-f``, ``-I``, ``-X``,
  ``-0``...) are each "invalid option", as is every other printable ASCII character read as
  an option letter (``-=``, ``-%``, ``-v-``) and a non-ASCII one (``-é``), alone or after a
  flag (``-vI``).

- each long name that requires a value, given an empty one (``--mem=``): ``sbatch
  --test-only -p alpha --gres=gpu:t4:1 --<name>=`` on the local cluster (``make slurm-up``),
  which says "Invalid --mem specification" (or the controller's "allocation failure: ...")
  for :data:`EMPTY_REFUSED`; the others were submitted for real as a user, held with
  ``--begin``, and ``scontrol show job`` compared with the same job without the option:
  :data:`EMPTY_NONE` changed nothing or set the field empty (``Features=``), and
  :data:`EMPTY_MISREAD` something else (each one's entry says what), run where it matters
  (``--input=`` gave the job its working directory as standard input: ``cat: -: Is a
  directory``).

- each short letter that takes a value in its word (:data:`VALUE_REQUIRED_SHORT`, ``-k``),
  its value after a space in the same word (``-t 60``: getopt gives ``-t`` the rest of the
  word, " 60", space and all; after a flag, ``-v x``, the space is read as an option
  letter: "invalid option -- ' '"): ``sbatch --test-only`` (and ``sbatch -v``'s "defined
  options") on the local cluster, then, for those it takes, a held submission's ``scontrol
  show job`` compared with the same job given the value without the space:
  :data:`SPACED_REFUSED`, :data:`SPACED_MISREAD` (each one's entry says what) and
  :data:`SPACED_SAME`.

- each short letter that takes a value in its word, its value after ``=`` (``-t=60``: getopt
  gives ``-t`` the rest of the word, "=60"): ``sbatch --test-only -p alpha -t=60`` on the
  local cluster, then, for those it takes, a held submission's ``scontrol show job``
  compared with the same job given ``-t60``: :data:`EQUALS_REFUSED`, :data:`EQUALS_MISREAD`
  (none reads the same).

- each option that takes a value, given one with a trailing space (``--mem=4G ``, ``-t60 ``),
  and each long one with a leading space (``--mem= 4G``; a short one's is
  :data:`SPACED_REFUSED`'s): ``sbatch --test-only`` on the local cluster against the value
  without the space (and the context the option needs: ``--gpus-per-task`` with ``-n1``,
  ``--mem-per-gpu`` with ``--gpus=1``, ``--batch`` with ``--constraint``), then, for those it
  takes, a held submission's ``scontrol show job`` compared, and ``sbatch -v``'s "defined
  options" where the job does not show the value (``--wckey``, ``--context``: kept with the
  space, and passed on so; ``--open-mode=append `` read as ``a``; ``--priority= 10`` as 10);
  ``--export=ALL `` run: the job did not get the submitter's environment.
  :data:`TRAILING_REFUSED`, :data:`TRAILING_MISREAD`, :data:`TRAILING_SAME`, their
  ``_SHORT`` twins, :data:`LEADING_REFUSED`, :data:`LEADING_MISREAD`, :data:`LEADING_SAME`;
  what Slurm reads for each misread: :data:`SPACE_MISREAD`. ``--acctg-freq=energy=30 `` and
  ``--acctg-freq= energy=30`` are read the same as far as sbatch and the controller show
  (the step reads the frequency by name, anywhere in the value).

Checked 2026-12-07: for every prefix of every long name and every short word of one to three
letters, sbatch said "requires an argument" exactly where
:func:`daemon.settings.sbatch_options.refusal` refuses the word alone as missing its value
(``-V``, ``-h`` aside: sbatch answers and exits, and carbond refuses them anyway).
"""

from __future__ import annotations

__all__ = [
    "EMPTY_MISREAD",
    "EMPTY_NONE",
    "EMPTY_REFUSED",
    "EQUALS_MISREAD",
    "EQUALS_REFUSED",
    "FLAGS_SHORT",
    "LEADING_MISREAD",
    "LEADING_REFUSED",
    "LEADING_SAME",
    "LONG_OPTIONS",
    "SPACED_MISREAD",
    "SPACED_REFUSED",
    "SPACED_SAME",
    "SPACE_MISREAD",
    "TRAILING_MISREAD",
    "TRAILING_MISREAD_SHORT",
    "TRAILING_REFUSED",
    "TRAILING_REFUSED_SHORT",
    "TRAILING_SAME",
    "TRAILING_SAME_SHORT",
    "VALUE_OPTIONAL",
    "VALUE_OPTIONAL_SHORT",
    "VALUE_REQUIRED",
    "VALUE_REQUIRED_SHORT",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# long options that require a value: ``--mem`` alone takes the next argv word as it
VALUE_REQUIRED = _words("""
    account acctg-freq array batch bb bbf begin chdir cluster cluster-constraint clusters
    comment constraint container context core-spec cores-per-socket cpu-freq cpus-per-gpu
    cpus-per-task deadline delay-boot dependency distribution error exclude export
    export-file extra-node-info gid gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket
    gpus-per-task gres gres-flags hint input job-name kill-on-invalid-dep licenses
    mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu mincpus network
    nodefile nodelist nodes ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node
    ntasks-per-socket ntasks-per-tres open-mode output partition power prefer priority
    profile qos reservation signal sockets-per-node switches tasks-per-node thread-spec
    threads-per-core time time-min tmp uid wait-all-nodes wckey wrap
""")
# of VALUE_REQUIRED: those whose empty value (``--mem=``) sbatch 22.05 or its controller
# refuses, so every job given it is refused ("Invalid --mem specification", "Invalid numeric
# value "" for --ntasks", "No cluster '' known by database", "Job --batch option is invalid")
EMPTY_REFUSED = _words("""
    batch bbf begin cluster clusters cores-per-socket cpu-freq cpus-per-gpu cpus-per-task
    deadline delay-boot distribution export-file gid gpu-bind gpu-freq gres gres-flags hint
    kill-on-invalid-dep mail-type mem mem-bind mem-per-cpu mem-per-gpu mincpus nodefile nodes
    ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket ntasks-per-tres
    open-mode partition profile signal sockets-per-node switches tasks-per-node thread-spec
    threads-per-core time time-min tmp uid wrap
""")
# of VALUE_REQUIRED: those whose empty value sbatch 22.05 takes but Slurm reads as something
# other than none: what it reads
EMPTY_MISREAD = {
    "core-spec": "--core-spec=0, no core kept for the system (sbatch says the same "
    "'Ignoring -S' of both where the cluster does not allow it)",
    "input": "the job's working directory as its standard input, not /dev/null (the job "
    "reads a directory: 'cat: -: Is a directory')",
    "qos": "a QOS named '', not the user's default QOS (sacct shows the job's QOS as "
    "Unknown where one without --qos has 'normal')",
}
# of VALUE_REQUIRED: those whose empty value sbatch 22.05 takes as none (``--reservation=``
# plans the job outside any reservation; ``--constraint=`` asks no feature)
EMPTY_NONE = _words("""
    account acctg-freq array bb chdir cluster-constraint comment constraint container context
    dependency error exclude export extra-node-info gpus gpus-per-node gpus-per-socket
    gpus-per-task job-name licenses mail-user mcs-label network nodelist output power prefer
    priority reservation wait-all-nodes wckey
""")
# long options whose value is optional (``--exclusive``, ``--exclusive=user``)
VALUE_OPTIONAL = _words("exclusive get-user-env nice no-kill propagate")
# long options that take no value
_NO_VALUE = _words("""
    contiguous help hold ignore-pbs no-requeue overcommit oversubscribe parsable quiet reboot
    requeue spread-job test-only usage use-min-nodes verbose version wait
""")
LONG_OPTIONS = VALUE_REQUIRED | VALUE_OPTIONAL | _NO_VALUE
# short options that require a value: ``-t`` alone takes the next argv word as it (``-t60``
# gives it in the same word)
VALUE_REQUIRED_SHORT = frozenset("abcdeimnopqtwxABCDFGJLMNS")
# short options whose value is optional, and only ever in their own word (``-k``,
# ``-koff``: --no-kill=off)
VALUE_OPTIONAL_SHORT = frozenset("k")
# of VALUE_REQUIRED_SHORT and VALUE_OPTIONAL_SHORT: those whose value after a space in the
# same word (``-t 60``, a value " 60") sbatch 22.05 or its controller refuses, so every job
# given it is refused: "Invalid --time specification" (-t), "Invalid --distribution
# specification" (-m), "Invalid --begin specification" (-b), "Invalid --no-kill
# specification" (-k), "invalid partition specified:  alpha" (-p), "No cluster ' carbond'
# known by database" (-M), "Invalid --nodefile node file" (-F), the controller's "Invalid
# feature specification" (-C), "Invalid license specification" (-L), "Job dependency
# problem" (-d)
SPACED_REFUSED = frozenset("bdkmptCFLM")
# of VALUE_REQUIRED_SHORT: those whose value after a space sbatch 22.05 takes, space and
# all, and Slurm reads as something other than the value without it: what it reads
# (``scontrol show job`` of a held job, the local cluster; /tmp/w its working directory)
SPACED_MISREAD = {
    "A": "an account whose name starts with a space, which no association has: the job "
    "is charged to the user's default account (-A carbond: Account=root, where -Acarbond "
    "gives Account=carbond)",
    "q": "a QOS whose name starts with a space, not the QOS named (-q normal: QOS=, where "
    "-qnormal gives QOS=normal)",
    "i": "a file whose name starts with a space, under the job's working directory (-i "
    "/dev/null: StdIn=/tmp/w/ /dev/null)",
    "e": "a file whose name starts with a space, under the job's working directory (-e "
    "x.err: StdErr=/tmp/w/ x.err)",
    "o": "a file whose name starts with a space, under the job's working directory (-o "
    "x.out: StdOut=/tmp/w/ x.out)",
    "D": "a directory whose name starts with a space, under sbatch's working directory (-D "
    "/tmp: WorkDir=/tmp/w/ /tmp)",
    "J": "a job name that starts with a space (-J name: JobName= name)",
    "G": "a GPU count that starts with a space (-G 1: TresPerJob=gres:gpu: 1)",
}
# of VALUE_REQUIRED_SHORT: those whose value after a space sbatch 22.05 reads as without it
# (a number: -c 2 is cpus-per-task 2; a node list or array range: -x n2 is ExcNodeList=n2)
SPACED_SAME = frozenset("acnwxBNS")
# of VALUE_REQUIRED_SHORT and VALUE_OPTIONAL_SHORT: those whose value after ``=`` in the same
# word (``-t=60``, a value "=60") sbatch 22.05 or its controller refuses, so every job given it
# is refused: "Invalid --time specification" (-t), "Invalid numeric value "=2" for
# --cpus-per-task" (-c; -n, -B, -S alike), ""=1" is not a valid node count" (-N), "Invalid
# --begin/--distribution/--no-kill specification" (-b, -m, -k), "invalid partition specified:
# =alpha" (-p), "No cluster '=carbond' known by database" (-M), "Invalid --nodefile node file"
# (-F), the controller's "Invalid node name specified" (-w, -x), "Invalid job array
# specification" (-a), "Job dependency problem" (-d), "Invalid feature specification" (-C, with
# the node's feature as the reference), "Invalid license specification" (-L, a license the
# cluster has), "Requested node configuration is not available" (-G)
EQUALS_REFUSED = frozenset("abcdkmnptwxBCFGLMNS")
# of VALUE_REQUIRED_SHORT: those whose value after ``=`` sbatch 22.05 takes, ``=`` and all,
# and Slurm reads as something other than the value without it: what it reads (``scontrol
# show job`` of a held job, the local cluster; /tmp/w sbatch's working directory)
EQUALS_MISREAD = {
    "A": "an account whose name starts with '=', which no association has: the job is "
    "charged to the user's default account (-A=carbond: Account=root, where -Acarbond gives "
    "Account=carbond)",
    "q": "a QOS whose name starts with '=', not the QOS named (-q=normal: QOS=, where "
    "-qnormal gives QOS=normal)",
    "i": "a file whose name starts with '=', under the job's working directory "
    "(-i=/dev/null: StdIn=/tmp/w/=/dev/null)",
    "e": "a file whose name starts with '=', under the job's working directory (-e=x.err: "
    "StdErr=/tmp/w/=x.err)",
    "o": "a file whose name starts with '=', under the job's working directory (-o=x.out: "
    "StdOut=/tmp/w/=x.out)",
    "D": "a directory whose name starts with '=', under sbatch's working directory (-D=/tmp: "
    "WorkDir=/tmp/w/=/tmp)",
    "J": "a job name that starts with '=' (-J=name: JobName==name)",
}
# short options that take no value: in one word (``-vt``) the next letter is another option
FLAGS_SHORT = frozenset("hsvHOQVW")
# of VALUE_REQUIRED and VALUE_OPTIONAL: those whose value with a trailing space (``--mem=4G ``)
# sbatch 22.05 or its controller refuses ("Invalid --mem specification", "Invalid numeric value
# "1 " for --ntasks", "invalid partition specified", "Requested reservation is invalid",
# "Invalid feature specification", "Invalid Trackable RESource (TRES) specification", ...)
TRAILING_REFUSED = _words("""
    array batch bbf cluster clusters constraint core-spec cores-per-socket cpus-per-gpu
    cpus-per-task delay-boot dependency distribution export-file extra-node-info gid gpu-freq
    gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags hint kill-on-invalid-dep
    licenses mail-type mem mem-bind mem-per-cpu mem-per-gpu mincpus nodefile ntasks
    ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket ntasks-per-tres partition
    prefer reservation signal sockets-per-node switches tasks-per-node thread-spec
    threads-per-core time time-min tmp uid wait-all-nodes exclusive get-user-env no-kill
    propagate
""")
# ... those sbatch takes and Slurm keeps the space in (what it reads: SPACE_MISREAD)
TRAILING_MISREAD = _words("""
    account bb chdir cluster-constraint comment container context error export gpu-bind input
    job-name mail-user mcs-label network output power qos wckey
""")
# ... those sbatch reads as without the space (a time, a node list, a keyword it parses)
TRAILING_SAME = _words("""
    acctg-freq begin cpu-freq deadline exclude nodelist nodes open-mode priority profile wrap
    nice
""")
# of VALUE_REQUIRED and VALUE_OPTIONAL: those whose value with a leading space (``--time=
# 60``) sbatch 22.05 or its controller refuses ("Invalid --time specification", "Invalid
# --begin specification", "unrecognized --cpu-freq argument", ...)
LEADING_REFUSED = _words("""
    batch bbf begin cluster clusters constraint cpu-freq deadline delay-boot dependency
    distribution export-file gpu-bind gpu-freq gres gres-flags hint kill-on-invalid-dep
    licenses mail-type mem-bind nodefile open-mode partition prefer reservation time time-min
    exclusive no-kill propagate
""")
# ... those sbatch takes and Slurm keeps the space in (what it reads: SPACE_MISREAD)
LEADING_MISREAD = _words("""
    account bb chdir cluster-constraint comment container context error export gpus
    gpus-per-node gpus-per-socket gpus-per-task input job-name mail-user mcs-label network
    output power qos wckey
""")
# ... those sbatch reads as without the space (a number: strtol skips it; a node list)
LEADING_SAME = _words("""
    acctg-freq array core-spec cores-per-socket cpus-per-gpu cpus-per-task exclude
    extra-node-info gid mem mem-per-cpu mem-per-gpu mincpus nodelist nodes ntasks
    ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket ntasks-per-tres priority
    profile signal sockets-per-node switches tasks-per-node thread-spec threads-per-core tmp
    uid wait-all-nodes wrap get-user-env nice
""")
# of VALUE_REQUIRED_SHORT and VALUE_OPTIONAL_SHORT, their value with a trailing space
# (``-t60 ``): refused ("Invalid --time specification", ...), misread (SPACE_MISREAD, by the
# long name), read the same
TRAILING_REFUSED_SHORT = frozenset("acdkmnptBCFGLMS")
TRAILING_MISREAD_SHORT = {"A": "account", "q": "qos", "i": "input", "e": "error",
                          "o": "output", "D": "chdir", "J": "job-name"}  # fmt: skip
TRAILING_SAME_SHORT = frozenset("bwxN")
# what Slurm reads of a value sbatch keeps its space in (``scontrol show job`` of a held job
# on the local cluster, against the value without the space; /tmp/w sbatch's working dir)
SPACE_MISREAD = {
    "account": "an account whose name has the space, which no association has: the job is "
    "charged to the user's default account (Account=root, where --account=carbond gives "
    "Account=carbond)",
    "qos": "a QOS whose name has the space, not the QOS named (QOS=)",
    "input": "a file whose name has the space (StdIn=/dev/null with it, or /tmp/w/ /dev/null)",
    "error": "a file whose name has the space (StdErr=/tmp/w/x.err with it)",
    "output": "a file whose name has the space (StdOut=/tmp/w/x.out with it)",
    "chdir": "a directory whose name has the space (WorkDir=/tmp with it, or /tmp/w/ /tmp)",
    "job-name": "a job name that has the space (JobName=name with it)",
    "bb": "a burst buffer request that has the space (BurstBuffer=x with it)",
    "cluster-constraint": "a cluster feature that has the space (ClusterFeatures=x with it)",
    "comment": "a comment that has the space",
    "container": "a container path that has the space (Container=/tmp with it)",
    "context": "an SELinux context that has the space (sbatch passes 'x ' on)",
    "export": "no variable named ALL: the job does not get the submitter's environment "
    "(run: a variable set at submission is unset in the job)",
    "gpu-bind": "a GPU binding that has the space (TresBind=gpu:closest with it)",
    "gpus": "a GPU count that has the space (TresPerJob=gres:gpu: 1)",
    "gpus-per-node": "a GPU count that has the space (TresPerNode=gres:gpu: 1)",
    "gpus-per-socket": "a GPU count that has the space (TresPerSocket=gres:gpu: 1)",
    "gpus-per-task": "a GPU count that has the space (TresPerTask=gres:gpu: 1)",
    "mail-user": "a mail address that has the space (MailUser=a@b with it)",
    "mcs-label": "an MCS label that has the space (MCS_label=x with it)",
    "network": "a network request that has the space (Network=x with it)",
    "power": "no power flag (Power=, where --power=level gives Power=LEVEL)",
    "wckey": "a wckey that has the space (sbatch passes 'w ' on)",
}
