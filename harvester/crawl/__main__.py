"""``python -m harvester.crawl``: the crawl child process (see ``harvester.crawl.runner``)."""

from harvester.crawl.runner import main

if __name__ == "__main__":
    main()
