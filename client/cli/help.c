/* help.c - every help text of the forq command: the overview (forq help, forq --help) and one
 * page per command (forq help COMMAND, forq COMMAND --help). forq(1) says the same at more
 * length; the exit codes here and in cli.h are one list. */
#define _GNU_SOURCE
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *summary; /* one line in the overview */
    const char *text;    /* the command's page */
} help_t;

static const help_t pages[] = {
    {"submit", "run a task and print its result",
     "Usage: forq submit TASK [ARGS_JSON] [OPTIONS]\n"
     "Run TASK and print its result as JSON on stdout.\n"
     "\n"
     "ARGS_JSON is a JSON array of positional arguments, or one value (default\n"
     "[]). Write it on the command line, or '-' to read it from stdin, or @FILE to\n"
     "read it from FILE (for arguments too big for a command line). A negative\n"
     "number is an argument: forq submit is_prime -7.\n"
     "\n"
     "Options:\n"
     "  --timeout SECONDS      kill the job if it runs longer (exit 3)\n"
     "  --deadline SECONDS     give up if no worker started it in time\n"
     "  --priority N           0..9, larger runs first (default 5)\n"
     "  --retries N            run again if its worker crashes (default 0)\n"
     "  --tags TAG[,TAG...]    run only where forqd or its node has these --tag\n"
     "  --id ID                choose the job id (default: a unique one)\n"
     "  --store DICT/KEY       also store the result in the dict service\n"
     "  --no-wait              print the job id once forqd has it, do not wait\n"
     "  --wait-timeout SECONDS stop waiting after SECONDS (exit 10; the job goes on)\n"
     "  --detach-on-interrupt  on Ctrl-C leave the job running and print its id\n"
     "                         (default: Ctrl-C cancels it)\n"
     "\n"
     "On a terminal the job's latest progress (done/total, its text) shows on\n"
     "stderr. Ctrl-C or SIGTERM cancels the job and exits 130; a second one exits\n"
     "at once.\n"},
    {"map", "run a task on every line of input",
     "Usage: forq map TASK [OPTIONS]\n"
     "Run TASK on every line of input (one JSON args value per line, as for\n"
     "submit) and print one JSON result per line: output line N answers input\n"
     "line N.\n"
     "\n"
     "A failed item prints {\"$error\": {\"index\", \"state\", \"type\", \"message\"}}\n"
     "(index from 0). A blank line, or a line that is not JSON, is such an item\n"
     "too (state \"invalid\", type \"InputError\"; no job runs it). forq map exits 1\n"
     "if any item failed, and lists the first failures on stderr. If forqd rejects\n"
     "the map's jobs (an unknown task, a full queue, forqd shutting down), the map\n"
     "stops at once with one message: exit 6.\n"
     "\n"
     "Options:\n"
     "  --input FILE           read FILE instead of stdin\n"
     "  --skip-blank           blank lines are not items: no output line for them\n"
     "  --chunksize N          items per job (default 64)\n"
     "  --window N             jobs in flight (default 8)\n"
     "  --unordered            print [index, result] lines as they finish\n"
     "  --timeout SECONDS      run timeout of each job (a chunk of items)\n"
     "  --priority N           0..9 (default 5)\n"
     "  --retries N            run a chunk again if its worker crashes (default 0)\n"
     "  --tags TAG[,TAG...]    run only where forqd or its node has these --tag\n"
     "\n"
     "On a terminal a progress bar shows on stderr (done/total with --input, rate,\n"
     "ETA). Ctrl-C or SIGTERM cancels the map's jobs, prints the results that were\n"
     "finished (in order, up to the first that was not), says \"interrupted: N of M\n"
     "items done\" and exits 130; a second one exits at once.\n"},
    {"wait", "wait for a job submitted elsewhere and print its result",
     "Usage: forq wait ID [--timeout SECONDS]\n"
     "Wait for job ID (submitted with --no-wait, or by another client) and print\n"
     "its result. --timeout: stop waiting after SECONDS (exit 10; the job goes on).\n"
     "A job forqd does not know exits 11 and says why. On a terminal its latest\n"
     "progress shows on stderr; Ctrl-C stops waiting (exit 130), the job goes on.\n"},
    {"cancel", "cancel a queued or running job",
     "Usage: forq cancel ID\n"
     "Cancel job ID: a queued job is removed, a running one's worker is killed (a\n"
     "fresh one takes its place). Prints {\"id\", \"outcome\"}: dequeued or killing\n"
     "(exit 0), finished or unknown (exit 11, with the reason on stderr).\n"},
    {"status", "one job's state, or forqd's view",
     "Usage: forq status [ID] [--json]\n"
     "With ID: the job's state as JSON (id, state, task, attempts, owner,\n"
     "queued_at; while it runs: pid, started_at, elapsed_s and its progress;\n"
     "while queued: priority, waiting_s); a job forqd does not know exits 11 and\n"
     "says why on stderr. Without: forqd's view for an operator: version, uptime,\n"
     "endpoints, workers (pid, state, jobs done, RSS, task and job), the queue by\n"
     "priority, counters, jobs/s, the dict service, and the tasks.\n"
     "--json prints all of forqd's figures as JSON, for scripts.\n"},
    {"tasks", "list the tasks forqd offers",
     "Usage: forq tasks [--json]\n"
     "The tasks forqd offers, one per line with its doc string (its arguments\n"
     "and result); --json: an array of {\"name\", \"doc\"}.\n"},
    {"dict", "the shared dicts",
     "Usage: forq dict OP NAME [KEY] [VALUE_JSON] [OPTIONS]\n"
     "       forq dict list\n"
     "One operation on the shared dict NAME. Values are JSON; VALUE_JSON may also\n"
     "be '-' (stdin) or @FILE.\n"
     "\n"
     "  list                   the dicts you may read and their key counts: a JSON\n"
     "                         object {\"NAME\": KEYS, ...}, by name\n"
     "  get NAME KEY [--with-version]\n"
     "                         the value; --with-version: {\"value\": V, \"ver\": N}\n"
     "  set NAME KEY VALUE     store it; prints the new version\n"
     "  del NAME KEY, has NAME KEY, pop NAME KEY\n"
     "  setdefault NAME KEY VALUE\n"
     "                         store it unless the key exists; prints the value now\n"
     "  incr NAME KEY [DELTA]  add DELTA (default 1) to an integer; prints the sum\n"
     "  cas NAME KEY VERSION VALUE\n"
     "                         store it only if the key's version is VERSION (0: the\n"
     "                         key must not exist); prints the new version\n"
     "  wait NAME KEY [--version V] [--timeout S] [--with-version]\n"
     "                         block until the key changes (from version V)\n"
     "  len NAME, clear NAME, update NAME '{\"k\": V, ...}'\n"
     "  mget NAME KEY...       the keys that exist, read at one instant (JSON)\n"
     "  mset NAME '{\"k\": V, ...}'\n"
     "                         set them all or none; prints the last version\n"
     "  keys NAME, items NAME  a JSON array of keys, a JSON object\n"
     "  dump NAME              JSON lines of key, version, value\n"
     "\n"
     "Exit 11: no such key; 12: cas conflict; 13: the dict service is full;\n"
     "14: incr on a value that is not an integer, or a sum beyond 64 bits.\n"},
    {"queue", "the shared queues",
     "Usage: forq queue VERB NAME [VALUE_JSON] [OPTIONS]\n"
     "One operation on the shared queue NAME (queues and dicts have names of their\n"
     "own). Items are JSON; VALUE_JSON may also be '-' (stdin) or @FILE.\n"
     "\n"
     "  put NAME VALUE [--front] [--maxsize N] [--timeout S | --nowait]\n"
     "                         put it at the back (--front: at the front); with\n"
     "                         --maxsize, wait while the queue holds N items (exit\n"
     "                         13 when no room came); prints the items it holds\n"
     "  get NAME [--timeout S | --nowait]\n"
     "                         take the first item, waiting for one (for ever\n"
     "                         unless --timeout); prints it (exit 10: none came)\n"
     "  len NAME               the number of items\n"
     "  range NAME [--start I] [--limit N]\n"
     "                         items from index I without taking them (a JSON\n"
     "                         array, at most N, default 1000)\n"
     "  clear NAME             remove every item; prints how many\n"
     "\n"
     "A get that forq is waiting in takes nothing with it if forq is stopped.\n"},
    {"lock", "locks with leases and fencing tokens",
     "Usage: forq lock VERB NAME [TOKEN] [OPTIONS]\n"
     "One operation on the shared lock NAME.\n"
     "\n"
     "  acquire NAME [--lease S] [--timeout S | --nowait] [--permits N]\n"
     "                         wait for the lock (for ever unless --timeout; exit\n"
     "                         10 when it was not granted) and print its fencing\n"
     "                         token; the grant ends by itself after its lease\n"
     "                         (default 60 s) unless renewed; --permits N: a\n"
     "                         semaphore of N holders\n"
     "  release NAME TOKEN     end the grant\n"
     "  renew NAME TOKEN [--lease S]\n"
     "                         its lease ends S (default 60) seconds from now\n"
     "\n"
     "Exit 12: the token does not hold the lock any more (its lease ended, or it\n"
     "was released).\n"},
    {"event", "shared events",
     "Usage: forq event VERB NAME [OPTIONS]\n"
     "One operation on the shared event NAME (as Python's multiprocessing.Event).\n"
     "\n"
     "  set NAME               set it: every wait returns\n"
     "  clear NAME             clear it\n"
     "  wait NAME [--timeout S | --nowait]\n"
     "                         wait until it is set (for ever unless --timeout;\n"
     "                         exit 10 when it was not set in time); prints true;\n"
     "                         --nowait prints whether it is set\n"},
    {"ping", "check that forqd answers",
     "Usage: forq ping\n"
     "Ask forqd whether it is there: prints its version, endpoint and the round\n"
     "trip.\n"},
    {"jobs", "list the live jobs (an operator's view)",
     "Usage: forq jobs [--state queued|running] [--task TASK] [--limit N] [--json]\n"
     "The jobs forqd runs and has queued: running first, then queued by priority,\n"
     "with id, task, state, owner, priority, age and a running job's progress.\n"
     "A client with the admin right (or on ipc) sees every client's jobs, any\n"
     "other its own. --limit: at most N (default 1000, at most 10000).\n"},
    {"purge", "cancel queued jobs (admin)",
     "Usage: forq purge [--task TASK]\n"
     "Cancel every queued job, or those of TASK, whoever submitted them; jobs\n"
     "already with a worker go on (forq cancel ID stops one). Prints\n"
     "{\"cancelled\": N}. Needs the admin right (exit 15 without it).\n"},
    {"keygen", "make a CURVE key pair for tcp endpoints",
     "Usage: forq keygen [--out FILE] [--force]\n"
     "Make a CURVE key pair for connecting to forqd's tcp endpoints: the file\n"
     "(default $XDG_CONFIG_HOME/forq/client.key, else ~/.config/forq/client.key,\n"
     "which forq uses when no --key is given) gets mode 0600; the public key is\n"
     "printed, for forqd's operator to add to its clients file. An existing file\n"
     "is kept unless --force.\n"},
    {"help", "this help, or a command's",
     "Usage: forq help [COMMAND]\n"
     "The overview of forq, or the help of COMMAND (as forq COMMAND --help).\n"},
};

static const char overview_head[] =
    "Usage: forq [-e ENDPOINT] COMMAND [ARGS]\n"
    "Submit jobs to forqd and ask about them. Values are JSON on the command line\n"
    "and stdout; bytes are {\"$base64\": \"...\"}.\n"
    "\n"
    "Commands:\n";

static const char overview_tail[] =
    "'forq help COMMAND' (or 'forq COMMAND --help') shows a command's options.\n"
    "\n"
    "Options:\n"
    "  -e, --endpoint EP      forqd's endpoint (default: $FORQ_ENDPOINT, else\n"
    "                         ipc://$XDG_RUNTIME_DIR/forq/forqd.sock)\n"
    "      --connect-timeout S\n"
    "                         how long to wait for forqd to answer (default 5)\n"
    "      --lost-after S     give a job up as lost when forqd stays unreachable\n"
    "                         this long while forq waits (default 60; 0: never)\n"
    "      --server-key KEY   forqd's CURVE public key (forqd --show-key), or a\n"
    "                         file holding it: connect with CURVE, as a tcp\n"
    "                         endpoint requires (default: $FORQ_SERVER_KEY)\n"
    "      --key FILE         your key pair (forq keygen; default: $FORQ_KEY, else\n"
    "                         the file forq keygen writes by default)\n"
    "  -h, --help             print this help\n"
    "  -V, --version          print the version\n"
    "\n"
    "Exit status:\n"
    "   0 ok                           8 cannot reach forqd\n"
    "   1 the task raised an error     9 protocol or system error\n"
    "   2 usage error                 10 a wait timed out: --wait-timeout (the\n"
    "   3 the job timed out              job goes on); queue get, lock acquire,\n"
    "   4 the job was cancelled          event wait\n"
    "   5 the job's worker crashed    11 no such job or key / nothing to cancel\n"
    "   6 the job was rejected        12 dict cas: version conflict; lock: the\n"
    "   7 the job was lost               token no longer holds it\n"
    "                                 13 the dict service is full; a queue is at\n"
    "                                    its maxsize\n"
    "                                 14 dict incr: not an integer, or overflow\n"
    "                                 15 forbidden: no right to it (clients file)\n"
    "                                130 interrupted (Ctrl-C, SIGTERM)\n"
    "forq map exits 1 when any item failed, with a summary of failures on stderr.\n";

int help_print(const char *cmd)
{
    if (!cmd) {
        fputs(overview_head, stdout);
        for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
            printf("  %-8s %s\n", pages[i].name, pages[i].summary);
        fputs(overview_tail, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        if (strcmp(pages[i].name, cmd) == 0) {
            fputs(pages[i].text, stdout);
            return 0;
        }
    }
    return usage_error("there is no command '%s' (the commands: submit map wait cancel status "
                       "tasks dict queue lock event ping keygen jobs purge help)",
                       cmd);
}

int cmd_help(const globals_t *g, int argc, char **argv)
{
    (void)g;
    if (argc > 2)
        return cmd_usage_error("help", "%s", "help takes at most one COMMAND");
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
        return help_print("help");
    return help_print(argc == 2 ? argv[1] : NULL);
}
